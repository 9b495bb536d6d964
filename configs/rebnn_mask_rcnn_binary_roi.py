# rebnn_mask_rcnn_binary_rpn.py with the RoI heads 1-bit too: the bbox head's shared FC layers
# (BinaryShared2FCBBoxHead) and the mask head's four 3x3 convs (BinaryFCNMaskHead); the mask deconv and the 1x1
# mask logits, fc_cls and fc_reg stay real (prediction layers).
_base_ = './rebnn_mask_rcnn_binary_rpn.py'

model = dict(roi_head=dict(bbox_head=dict(type='BinaryShared2FCBBoxHead'),
                           mask_head=dict(type='BinaryFCNMaskHead')))
