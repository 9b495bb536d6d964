from .backbone_classifier import BackboneClassifier, real_resnet_classifier_state_dict
from .distilled_classifier import DistilledBackboneClassifier, soft_cross_entropy

__all__ = ['BackboneClassifier', 'DistilledBackboneClassifier', 'real_resnet_classifier_state_dict',
           'soft_cross_entropy']
