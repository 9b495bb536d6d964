from .pretrained import PretrainedMismatchError, load_pretrained_backbone
from .reactnet_block import ReActBasicBlock
from .rebnn_resnet import ReBNNResNet, convert_real_resnet_state_dict

__all__ = ['PretrainedMismatchError', 'ReActBasicBlock', 'ReBNNResNet', 'convert_real_resnet_state_dict',
           'load_pretrained_backbone']
