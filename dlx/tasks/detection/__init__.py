"""Object detection on the digit scenes of dlx/data/scenes.py: up to 5 MNIST digits per
96x96 canvas, each with a box (x1, y1, x2, y2 pixels) and a class 0-9. One module per
concern; an experiment (experiments/detection/yolo_digit_scenes.py, rpn_digit_scenes.py)
takes its data hooks from `scenes` and the rest from its detector's module.

  scenes   what both detectors share: the base config, the dataset (boxes, labels,
           valid), the translation augmentation that moves boxes with their pixels
  yolo     YOLOv1 (docs/curriculum.md#f10, the loss #b11): the loss on grid targets,
           detections after class-wise NMS, COCO-style mAP, the per-class report
  rpn      region proposals, Faster R-CNN's first stage (docs/curriculum.md#f11): the
           sampled objectness + box loss, proposals, recall at 10 / 50 / 100

The non-learned box math (YOLO's grid encoding and decoding, anchor assignment and
sampling, proposals from anchors and deltas) is in dlx/ops/boxes.py.
"""
