from .distillation import DistilledFasterRCNN, DistilledFCOS, DistilledRetinaNet

__all__ = ['DistilledFasterRCNN', 'DistilledFCOS', 'DistilledRetinaNet']
