from .distillation import DistilledFasterRCNN, DistilledFCOS, DistilledRetinaNet
from .heads import dense_head

__all__ = ['DistilledFasterRCNN', 'DistilledFCOS', 'DistilledRetinaNet', 'dense_head']
