"""convert_to_deploy: turn a trained (fp32-simulated) binary model into its inference form, in place.

Every :class:`~rebnn_det.ops.ReBNNConv` with binary weights *and* binary activations becomes a
:class:`.PackedBinaryConv`, every such :class:`~rebnn_det.ops.ReBNNLinear` a :class:`.PackedBinaryLinear` (the
binary GEMM); layers with real weights or real activations stay as they are.
With ``fuse=True`` the elementwise work around the binary conv goes into the kernel's epilogue, so one pass over
the output computes it (per output channel ``o``, on the exact integer ``count``), step by step in the simulated
model's order and rounding -- the deploy model is bit-identical to the simulated one in eval mode:

- ReActBasicBlock sub-block ``RPReLU(BN(conv(x)) + shortcut)``: ``t = alpha_o count``; ``t = fma(t, a_o, b_o)``
  (the BN as PyTorch's CPU eval kernel computes it: ``a_o = gamma_o / sqrt(var_o + eps)``, ``b_o = beta_o -
  mu_o a_o``, see :func:`.kernels.bn_terms`); ``t = t + shortcut``; ``y = prelu(t - g_o, s_o) + z_o``;
- BinaryConvBlock ``act(BN(conv(x)) + shortcut(x))``: the same (RPReLU fused; another activation after);
- mmcv ConvModule with a binary conv followed by BN: the BN fused (the ConvModule's activation after);
- BinaryLinearBlock ``BN1d(fc(x)) + shortcut(x)`` (the binary RoI head's FCs): the same on the binary GEMM.

The model is put in eval mode (the BN uses its running statistics). Deploy modules are inference only.
The kernels output channels-last tensors. Real convolutions give different bits on channels-last and NCHW inputs
(another accumulation order), and the simulated model feeds them NCHW, so every real ``nn.Conv2d`` of a converted
model gets its input NCHW-contiguous (a no-op where it already is). mmdet's RoI extractors (mmcv RoIAlign: one
thread, reads a raw NCHW buffer) become :class:`.ParallelRoIExtractor` (all cores, any strides, the same values);
a detector that still has an mmcv op gets its features NCHW-contiguous on leaving the neck. ``nn.MaxPool2d``
(the stem's) becomes :class:`.ChannelsLastMaxPool2d` (all cores, NCHW read directly, channels-last out, the same
values), and fused blocks that a real conv reads next (an RPN conv, the last block of a head's conv tower) write
NCHW outputs.
"""
from typing import Optional

import torch
from mmcv.cnn import ConvModule
from torch import Tensor, nn

from ..models.backbones.reactnet_block import ReActBasicBlock
from ..models.dense_heads.binary_rpn_head import BinaryRPNHead
from ..models.layers.binary_conv_block import BinaryConvBlock
from ..models.layers.binary_linear_block import BinaryLinearBlock
from ..ops import RPReLU
from ..ops.shortcut import channel_shortcut, shortcut_pool
from .packed_conv import PackedBinaryConv, is_deployable
from .packed_linear import PackedBinaryLinear, is_deployable_linear
from .pooling import ChannelsLastMaxPool2d
from .roi_align import ParallelRoIExtractor

_BatchNorm = nn.modules.batchnorm._BatchNorm


def _fusable_bn(bn) -> bool:
    return isinstance(bn, _BatchNorm) and bn.running_mean is not None and bn.running_var is not None


def _rprelu_params(act: RPReLU):
    return act.shift_in.detach(), act.slope.detach(), act.shift_out.detach()


def _packed_with_bn(conv, bn, isa) -> PackedBinaryConv:
    packed = PackedBinaryConv.from_conv(conv, isa)
    packed.fuse_bn(bn)
    return packed


class FusedReActBasicBlock(nn.Module):
    """Inference form of :class:`ReActBasicBlock`: each sub-block ``RPReLU(BN(conv(x)) + shortcut)`` is one
    kernel call (conv, BN, shortcut add and RPReLU in the epilogue); the real downsample path is kept."""

    def __init__(self, block: ReActBasicBlock, isa: Optional[str] = None):
        super().__init__()
        self.conv1 = _packed_with_bn(block.conv1, block.bn1, isa)
        self.conv2 = _packed_with_bn(block.conv2, block.bn2, isa)
        self.act1, self.act2 = block.act1, block.act2
        self.downsample = block.downsample

    @classmethod
    def applies(cls, block: nn.Module) -> bool:
        return (isinstance(block, ReActBasicBlock) and type(block).forward is ReActBasicBlock.forward
                and is_deployable(block.conv1) and is_deployable(block.conv2) and _fusable_bn(block.bn1)
                and _fusable_bn(block.bn2) and isinstance(block.act1, RPReLU) and isinstance(block.act2, RPReLU))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_packed(x)[0]

    def forward_packed(self, x: Tensor, packed_input=None, pack_for: Optional[PackedBinaryConv] = None):
        """``(out, out packed for pack_for or None)``; conv1 packs its output for conv2 in its epilogue, and
        ``packed_input`` (``x`` packed for conv1 by the previous block) spares conv1 packing ``x``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        x, packed = self.conv1(x, residual=shortcut, rprelu=_rprelu_params(self.act1), packed_input=packed_input,
                               pack_for=self.conv2)
        out = self.conv2(x, residual=x, rprelu=_rprelu_params(self.act2), packed_input=packed, pack_for=pack_for)
        return out if pack_for is not None else (out, None)


class FusedReActStage(nn.Sequential):
    """A stage of :class:`FusedReActBasicBlock` s (a ResNet ``ResLayer``): each block's last conv packs its output
    for the next block's first conv in its epilogue, so no activation is packed in a pass of its own inside a
    stage (only the stage's input)."""

    @classmethod
    def applies(cls, module: nn.Module) -> bool:
        return (isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward
                and len(module) > 1 and all(isinstance(b, FusedReActBasicBlock) for b in module))

    def forward(self, x: Tensor) -> Tensor:
        blocks = list(self)
        packed = None
        for i, block in enumerate(blocks):
            nxt = blocks[i + 1].conv1 if i + 1 < len(blocks) else None
            x, packed = block.forward_packed(x, packed, nxt)
        return x


class FusedBinaryConvBlock(nn.Module):
    """Inference form of :class:`BinaryConvBlock` ``act(BN(conv(x)) + shortcut(x))``: conv, BN, shortcut
    add and (if the activation is RPReLU or ReLU) the activation in one kernel call; another activation runs
    after."""

    def __init__(self, block: BinaryConvBlock, isa: Optional[str] = None):
        super().__init__()
        self.conv = _packed_with_bn(block.conv, block.bn, isa)
        self.has_shortcut = block.has_shortcut
        self.stride = block.stride
        self.out_channels = block.out_channels
        act = getattr(block, 'act', None)
        self.rprelu = act if isinstance(act, RPReLU) else None
        self.relu = type(act) is nn.ReLU  # fused too (the kernel's relu is torch.relu exactly)
        self.act = None if isinstance(act, RPReLU) or self.relu else act

    @classmethod
    def applies(cls, block: nn.Module) -> bool:
        return (isinstance(block, BinaryConvBlock) and type(block).forward is BinaryConvBlock.forward
                and is_deployable(block.conv) and _fusable_bn(block.bn))

    def forward(self, x: Tensor) -> Tensor:
        residual = None
        if self.has_shortcut:
            s = shortcut_pool(x, self.stride)
            # a repeated shortcut (out = k * in) is added by the kernel without materializing the repeat; the
            # channel mean (in = k * out) is taken on NCHW like the simulated model (the same reduction order)
            residual = (s if self.out_channels % s.shape[1] == 0
                        else channel_shortcut(s.contiguous(), self.out_channels))
        out = self.conv(x, residual=residual,
                        rprelu=None if self.rprelu is None else _rprelu_params(self.rprelu), relu=self.relu)
        return out if self.act is None else self.act(out)


class FusedBinaryLinearBlock(nn.Module):
    """Inference form of :class:`BinaryLinearBlock` ``BN(fc(x)) + shortcut(x)``: the binary GEMM, the BN and the
    shortcut add in one kernel call."""

    def __init__(self, block: BinaryLinearBlock, isa: Optional[str] = None):
        super().__init__()
        self.fc = PackedBinaryLinear.from_linear(block.fc, isa)
        if block.bn is not None:
            self.fc.fuse_bn(block.bn)
        self.has_shortcut = block.has_shortcut
        self.out_features = block.out_features

    @classmethod
    def applies(cls, block: nn.Module) -> bool:
        return (isinstance(block, BinaryLinearBlock) and type(block).forward is BinaryLinearBlock.forward
                and is_deployable_linear(block.fc) and (block.bn is None or _fusable_bn(block.bn)))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x, residual=channel_shortcut(x, self.out_features) if self.has_shortcut else None)


def _fuse_conv_module(m: nn.Module, isa) -> bool:
    """mmcv ConvModule(conv=binary, norm=BN, order conv->norm...): the BN goes into the packed conv's epilogue."""
    if not (isinstance(m, ConvModule) and is_deployable(m.conv) and m.with_norm and _fusable_bn(m.norm)):
        return False
    order = list(m.order)
    if order.index('norm') != order.index('conv') + 1:
        return False
    m.conv = _packed_with_bn(m.conv, m.norm, isa)
    m.with_norm = False
    return True


def _contiguous_outputs(module, args, output):
    if isinstance(output, Tensor):
        return output.contiguous()
    if isinstance(output, (tuple, list)):
        return type(output)(o.contiguous() if isinstance(o, Tensor) else o for o in output)
    return output


def _nchw_inputs(module, args):
    return tuple(a.contiguous() if isinstance(a, Tensor) else a for a in args)


def _real_convs_read_nchw(model: nn.Module) -> None:
    """Every real ``nn.Conv2d`` of ``model`` gets its input NCHW-contiguous, as in the simulated model (PyTorch's
    CPU convolution accumulates in another order on channels-last inputs: not bit-identical)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and not getattr(m, '_rebnn_nchw_input', False):
            m.register_forward_pre_hook(_nchw_inputs)
            m._rebnn_nchw_input = True


def _stride_blind_ops(model: nn.Module) -> list:
    """Names of the mmcv ops of ``model`` that may read their input as a raw NCHW buffer (mmcv's RoIAlign does),
    leaving out those a ParallelRoIExtractor has replaced (it reads any strides)."""
    replaced = {id(m) for p in model.modules() if isinstance(p, ParallelRoIExtractor) for m in p.modules()}
    return [name for name, m in model.named_modules()
            if type(m).__module__.startswith('mmcv.ops') and id(m) not in replaced]


def _features_to_nchw(model: nn.Module) -> None:
    """The kernels write channels-last tensors (the next binary layer packs them fastest). Some consumers of a
    detector's features ignore strides (mmcv's RoIAlign reads the raw NCHW buffer), so, while the model has such
    an op, the features leaving an mmdet detector's ``extract_feat`` (its neck, else its backbone) are made
    NCHW-contiguous. (Its real convs read NCHW anyway: :func:`_real_convs_read_nchw`.)"""
    if not _stride_blind_ops(model):
        return
    feat = getattr(model, 'neck', None) if getattr(model, 'with_neck', False) else getattr(model, 'backbone', None)
    if hasattr(model, 'extract_feat') and isinstance(feat, nn.Module) and not getattr(feat, '_rebnn_nchw', False):
        feat.register_forward_hook(_contiguous_outputs)
        feat._rebnn_nchw = True


def _stem_modules(backbone: nn.Module):
    """``(bn attribute name, bn, maxpool)`` of a ResNet stem ``conv -> BN -> ReLU -> max pool`` whose forward is
    the class's own (ReBNNResNet, mmdet's ResNet without deep_stem), else None."""
    from mmdet.models.backbones import ResNet

    from ..models.backbones.rebnn_resnet import ReBNNResNet
    if type(backbone).forward is ReBNNResNet.forward:
        name = 'bn1'
    elif type(backbone).forward is ResNet.forward and not backbone.deep_stem:
        name = backbone.norm1_name
    else:
        return None
    bn, relu, pool = (getattr(backbone, a, None) for a in (name, 'relu', 'maxpool'))
    if (isinstance(bn, nn.BatchNorm2d) and _fusable_bn(bn) and type(relu) is nn.ReLU
            and ChannelsLastMaxPool2d.applies(pool)):
        return name, bn, pool
    return None


def _fuse_stems(model: nn.Module) -> None:
    """A ResNet stem's BN -> ReLU -> max pool becomes one ChannelsLastMaxPool2d pass (the BN and ReLU modules are
    replaced by identities: the backbone's forward still calls them, and they are used nowhere else)."""
    for m in model.modules():
        stem = _stem_modules(m)
        if stem is not None:
            name, bn, pool = stem
            setattr(m, name, nn.Identity())
            m.relu = nn.Identity()
            m.maxpool = ChannelsLastMaxPool2d(pool, bn, relu=True).eval()


def _outputs_read_by_real_convs(model: nn.Module) -> None:
    """Fused binary blocks whose output a real conv reads next write it NCHW (no layout copy before the real
    conv): an RPN head's conv (its 1x1 objectness / box convs read it after a ReLU -- a BinaryRPNHead's ReLU goes
    into the epilogue too) and the last block of a dense head's ``cls_convs`` / ``reg_convs`` tower (the
    prediction convs read it)."""
    for m in model.modules():
        rpn_conv = getattr(m, 'rpn_conv', None)
        if isinstance(rpn_conv, FusedBinaryConvBlock) and rpn_conv.act is None and not rpn_conv.relu and \
                type(m).forward_single is BinaryRPNHead.forward_single:
            rpn_conv.relu = rpn_conv.ends_with_relu = True  # the head's ReLU, in the epilogue
        last = [rpn_conv]
        for tower in ('cls_convs', 'reg_convs'):
            convs = getattr(m, tower, None)
            if isinstance(convs, (nn.ModuleList, nn.Sequential)) and len(convs):
                last.append(convs[-1])
        for block in last:
            if isinstance(block, FusedBinaryConvBlock):
                block.conv.nchw_output = True


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition('.')
    parent = root.get_submodule(parent_name) if parent_name else root
    parent._modules[attr] = new


@torch.no_grad()
def convert_to_deploy(model: nn.Module, fuse: bool = True, isa: Optional[str] = None) -> nn.Module:
    """Convert ``model`` in place (and return it) to deploy mode: packed XNOR-popcount binary convs, with the
    BN / shortcut add / RPReLU around them fused into the kernel epilogue when ``fuse``. ``isa`` forces a kernel
    path for every converted layer (default: ``$REBNN_KERNEL_ISA`` or the best available). A model that *is* a
    ReBNNConv is returned as a new :class:`PackedBinaryConv`."""
    model.eval()
    if is_deployable(model):
        return PackedBinaryConv.from_conv(model, isa)
    if fuse:
        for name, m in list(model.named_modules()):
            if not name:
                continue
            if FusedReActBasicBlock.applies(m):
                _replace(model, name, FusedReActBasicBlock(m, isa).eval())
            elif FusedBinaryConvBlock.applies(m):
                _replace(model, name, FusedBinaryConvBlock(m, isa).eval())
            elif FusedBinaryLinearBlock.applies(m):
                _replace(model, name, FusedBinaryLinearBlock(m, isa).eval())
            else:
                _fuse_conv_module(m, isa)
        for name, m in list(model.named_modules()):
            if name and FusedReActStage.applies(m):
                _replace(model, name, FusedReActStage(*m).eval())
        _fuse_stems(model)
    for name, m in list(model.named_modules()):
        if name and is_deployable(m):
            _replace(model, name, PackedBinaryConv.from_conv(m, isa))
        elif name and is_deployable_linear(m):
            _replace(model, name, PackedBinaryLinear.from_linear(m, isa))
        elif name and ParallelRoIExtractor.applies(m):
            _replace(model, name, ParallelRoIExtractor(m))
        elif name and ChannelsLastMaxPool2d.applies(m):
            _replace(model, name, ChannelsLastMaxPool2d(m))
    if fuse:
        _outputs_read_by_real_convs(model)
    _real_convs_read_nchw(model)
    _features_to_nchw(model)
    return model


def deploy_layers(model: nn.Module) -> dict:
    """``name -> PackedBinaryConv / PackedBinaryLinear`` of a converted model (to inspect what runs on the
    kernels)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (PackedBinaryConv, PackedBinaryLinear))}
