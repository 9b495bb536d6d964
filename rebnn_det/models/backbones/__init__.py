from .reactnet_block import ReActBasicBlock
from .rebnn_resnet import ReBNNResNet, convert_real_resnet_state_dict

__all__ = ['ReActBasicBlock', 'ReBNNResNet', 'convert_real_resnet_state_dict']
