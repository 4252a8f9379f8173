r"""Restricting a model's parameters to a few rows, as a function of one flat
vector.

Influence functions need derivatives with respect to a *subset*
:math:`\theta_S` of the parameters only: the embedding rows of the nodes
that matter, and optionally some shared dense weights.  Instead of rewriting
the user's model, every selected parameter :math:`W` is substituted, via
:func:`torch.func.functional_call`, by

.. math::
    W \mapsto W^{\text{detached}} + \mathrm{scatter}(S, \delta_W),

so the model becomes a function of one flat vector :math:`\delta` (zero at
the current parameters) and of nothing else.  All other parameters are
passed detached, so no autograd graph is built for them.
"""
from typing import (Any, Callable, Dict, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple)

import torch
from torch import Tensor
from torch.func import functional_call


class _Block(NamedTuple):
    name: str
    rows: Optional[Tensor]  # None: the whole parameter is free
    shape: Tuple[int, ...]  # shape of this block of delta
    start: int
    end: int


class _MethodCaller(torch.nn.Module):
    # `functional_call` only ever runs `forward`; routing through this
    # wrapper lets an objective call any method (e.g. `get_embedding`) with
    # the substituted parameters, using public API only.
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, method: str, *args, **kwargs):
        return getattr(self.model, method)(*args, **kwargs)


class FunctionalModel:
    r"""The user's model with its selected parameters replaced by
    :obj:`W.detach() + scatter(rows, delta)`; handed to an objective.

    Calling it runs :meth:`forward`; :meth:`call_method` runs any other
    method; :attr:`params` holds the substituted parameters (e.g. for an
    L2 term).
    """
    def __init__(self, caller: _MethodCaller, params: Dict[str, Tensor]):
        self._caller = caller
        self.params = params

    def __call__(self, *args, **kwargs) -> Any:
        return self.call_method('forward', *args, **kwargs)

    def call_method(self, name: str, *args, **kwargs) -> Any:
        r"""Runs :obj:`model.<name>(*args, **kwargs)` with the substituted
        parameters."""
        params = {f'model.{key}': value for key, value in self.params.items()}
        return functional_call(self._caller, params, (name, ) + args, kwargs)


class ParameterSelection:
    r"""Selects rows of node-indexed parameters, and optionally whole shared
    parameters, of any :class:`torch.nn.Module`, and exposes them as one
    flat vector :math:`\delta` of length :attr:`dim`.

    The layout of :math:`\delta` is: for each entry of :obj:`rows` in the
    given order, the selected rows in the given order, row-major; then each
    of :obj:`shared` in the given order, flattened.

    Args:
        model (torch.nn.Module): The model.  It is never copied; only
            :meth:`apply_` and :meth:`assign_` change it.
        rows (Dict[str, torch.Tensor]): Maps a parameter name (as in
            :meth:`~torch.nn.Module.named_parameters`) to the unique row
            indices to free, a :obj:`[K]` long tensor.
        shared (Sequence[str], optional): Names of parameters to free
            entirely (e.g. convolution weights). (default: :obj:`()`)
    """
    def __init__(self, model: torch.nn.Module, rows: Mapping[str, Tensor],
                 shared: Sequence[str] = ()):
        self.model = model
        self._caller = _MethodCaller(model)
        named = dict(model.named_parameters())
        blocks: List[_Block] = []
        offset = 0
        for name, index in rows.items():
            param = self._lookup(named, name, 'rows')
            if not isinstance(index, Tensor) or index.dtype != torch.long \
                    or index.dim() != 1:
                raise ValueError(f"'rows[{name!r}]' must be a 1-D long "
                                 f"tensor")
            if index.numel() > 0 and (int(index.min()) < 0 or int(
                    index.max()) >= param.size(0)):
                raise ValueError(f"'rows[{name!r}]' holds indices outside "
                                 f"[0, {param.size(0)})")
            # Duplicate rows would count one row's change twice.
            if index.unique().numel() != index.numel():
                raise ValueError(f"'rows[{name!r}]' holds duplicate indices")
            index = index.to(param.device)
            shape = (index.numel(), ) + tuple(param.shape[1:])
            size = int(torch.Size(shape).numel())
            blocks.append(_Block(name, index, shape, offset, offset + size))
            offset += size
        for name in shared:
            param = self._lookup(named, name, 'shared')
            if name in rows:
                raise ValueError(f"'shared' names {name!r}, which 'rows' "
                                 f"already restricts")
            blocks.append(
                _Block(name, None, tuple(param.shape), offset,
                       offset + param.numel()))
            offset += param.numel()
        if offset == 0:
            raise ValueError("'rows' and 'shared' select no parameters")
        dtypes = {named[block.name].dtype for block in blocks}
        if len(dtypes) != 1:
            raise ValueError(f"The selected parameters must share one dtype "
                             f"(got {sorted(map(str, dtypes))})")
        self._blocks = blocks
        self.dim = offset

    @staticmethod
    def _lookup(named: Dict[str, Tensor], name: str, what: str) -> Tensor:
        if name not in named:
            raise ValueError(f"'{what}' names {name!r}, which is not a "
                             f"parameter of the model")
        return named[name]

    @property
    def dtype(self) -> torch.dtype:
        return self._param(self._blocks[0].name).dtype

    @property
    def device(self) -> torch.device:
        return self._param(self._blocks[0].name).device

    @property
    def names(self) -> List[str]:
        r"""The names of the selected parameters, in the layout order."""
        return [block.name for block in self._blocks]

    def _param(self, name: str) -> Tensor:
        return self.model.get_parameter(name)

    def zeros(self) -> Tensor:
        r"""A zero :math:`\delta`, shape :obj:`[dim]`."""
        return torch.zeros(self.dim, dtype=self.dtype, device=self.device)

    def split(self, flat: Tensor) -> Iterator[Tuple[_Block, Tensor]]:
        r"""Yields each block's part of a flat :obj:`[dim]` vector, reshaped
        to the block's shape."""
        if flat.shape != (self.dim, ):
            raise ValueError(f"Expected a vector of shape [{self.dim}] (got "
                             f"{list(flat.shape)})")
        for block in self._blocks:
            yield block, flat[block.start:block.end].view(block.shape)

    def substitute(self, delta: Tensor) -> Dict[str, Tensor]:
        r"""All parameters of the model, detached, with the selected ones
        shifted by :obj:`delta` (the only tensor they depend on)."""
        params = {
            name: param.detach()
            for name, param in self.model.named_parameters()
        }
        for block, part in self.split(delta):
            if block.rows is None:
                params[block.name] = params[block.name] + part
            else:
                params[block.name] = params[block.name].index_add(
                    0, block.rows, part)
        return params

    def functional(self, objective: Callable[[FunctionalModel], Tensor]
                   ) -> Callable[[Tensor], Tensor]:
        r"""Turns :obj:`objective`, a scalar function of the model, into a
        function of :math:`\delta` alone.

        Args:
            objective (callable): Takes a :class:`FunctionalModel` and
                returns a scalar :class:`torch.Tensor`.
        """
        def func(delta: Tensor) -> Tensor:
            return objective(FunctionalModel(self._caller,
                                             self.substitute(delta)))

        return func

    def gradient(self, objective: Callable[[FunctionalModel], Tensor]
                 ) -> Tensor:
        r"""The gradient of :obj:`objective` with respect to the selected
        parameters at the current model, shape :obj:`[dim]`."""
        delta = self.zeros().requires_grad_()
        value = self.functional(objective)(delta)
        (grad, ) = torch.autograd.grad(value, delta)
        return grad.detach()

    def gather(self, tensors: Mapping[str, Tensor]) -> Tensor:
        r"""Gathers the selected entries of full-shape tensors (one per
        selected parameter name, e.g. gradients) into one flat :obj:`[dim]`
        vector."""
        parts = []
        for block in self._blocks:
            full = tensors[block.name]
            part = full if block.rows is None else full[block.rows]
            parts.append(part.reshape(-1))
        return torch.cat(parts)

    def gather_grad(self) -> Tensor:
        r"""The selected entries of the model's ``.grad`` attributes
        (zero where a gradient is missing), shape :obj:`[dim]`."""
        grads = {}
        for name in self.names:
            param = self._param(name)
            grads[name] = (torch.zeros_like(param)
                           if param.grad is None else param.grad)
        return self.gather(grads)

    def values(self) -> Tensor:
        r"""A copy of the current selected parameter values
        :math:`\theta_S`, shape :obj:`[dim]`."""
        return self.gather({name: self._param(name).detach()
                            for name in self.names}).clone()

    @torch.no_grad()
    def apply_(self, delta: Tensor, alpha: float = 1.0):
        r"""Adds :obj:`alpha * delta` to the selected parameters, in place.

        Pair with :meth:`values` and :meth:`assign_` to undo a change."""
        for block, part in self.split(delta):
            param = self._param(block.name)
            part = part.to(param.dtype)
            if block.rows is None:
                param.add_(part, alpha=alpha)
            else:
                param.index_add_(0, block.rows, part, alpha=alpha)

    @torch.no_grad()
    def assign_(self, values: Tensor):
        r"""Sets the selected parameters to :obj:`values` (as returned by
        :meth:`values`), in place."""
        for block, part in self.split(values):
            param = self._param(block.name)
            part = part.to(param.dtype)
            if block.rows is None:
                param.copy_(part)
            else:
                param.index_copy_(0, block.rows, part)

    def __repr__(self) -> str:
        parts = [
            f'{block.name}[{"all" if block.rows is None else len(block.rows)}]'
            for block in self._blocks
        ]
        return f'{self.__class__.__name__}({", ".join(parts)}, dim={self.dim})'
