# TENT (Wang et al., ICLR 2021, arXiv:2006.10726): minimise the softmax entropy of the test
# predictions, training only the affine parameters of the normalisation layers, which normalise
# with the test batch's statistics (DequanWang/tent tent.py:42-45, 64-80, 96-110).
model = dict(
    type='Adapter',
    # TENT's trainable set: every normalisation layer's weight and bias (BatchNorm, and
    # LayerNorm on a transformer encoder, as the CoTTA ACDC code's SegFormer TENT does).
    segmentor=dict(train_only=dict(norm=True)),
    terms=dict(
        # Mean softmax entropy in nats (tent.py:42-45, 57).
        ent=dict(type='TentEntropy', weight=1.0, branch='target'),
    ),
)
# The segmentation setting of mdtta (mariodoebler/test-time-adaptation
# segmentation/cfgs/tent.yaml, conf.py:98-128): SGD lr 2.5e-4, momentum 0.9, wd 5e-4, 1 step.
test_cfg = dict(
    type='TestTimeAdaptLoop',
    optim_wrapper=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4, nesterov=False),
    ),
    reset='continual',  # TENT's default (episodic=False, DequanWang/tent conf.py:39)
    steps=1,
    norm=dict(prior_strength=0),  # test-batch statistics only (no running statistics)
    predict_with='student',
    # Entropy minimisation collapses on long streams (DequanWang/tent #22): reset to the
    # source weights when the predicted class histogram loses half of its entropy.
    collapse_guard=dict(warmup=4, momentum=0.8, min_class_entropy=0.5),
)
