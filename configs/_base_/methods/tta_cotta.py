# CoTTA (Wang et al., CVPR 2022, arXiv:2203.13591): a per-step EMA teacher labels the stream;
# where the frozen source model (anchor) is unsure, the label comes from the teacher averaged
# over scaled + flipped copies; the student trains on the hard labels and after each step
# every weight element returns to its source value with probability 0.01. Numbers of the
# Cityscapes->ACDC segmentation code (copy in Anonymous-012/SVDP mmseg/apis/test.py:227-290).
model = dict(
    type='Adapter',
    teacher=dict(momentum=0.999, interval=1, start_iter=0),  # EMA 0.999 every step
    labellers=dict(
        cotta=dict(
            type='CoTTALabeller',
            confidence=0.69,  # anchor confidence above which the plain teacher label is kept
            scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),  # x flip: 14 teacher views
            flip=True,
        )
    ),
    terms=dict(cotta=dict(type='CoTTASelfTraining', weight=1.0, branch='target', labeller='cotta')),
)
# Adam 6e-5 / 8 ("Batchsize=1 now, was 8 during cityscapes training"), all parameters.
test_cfg = dict(
    type='TestTimeAdaptLoop',
    optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=7.5e-6, betas=(0.9, 0.999))
    ),
    reset='continual',
    steps=1,
    # The reference adapts in train mode: BatchNorm on test-batch statistics (cifar/cotta.py
    # configure_model, :171-187).
    norm=dict(prior_strength=0),
    predict_with='teacher',  # the output is the teacher's prediction (cifar/cotta.py:126)
    restore_prob=0.01,  # stochastic restore (RST, cifar/conf.py:95; ACDC code :285-290)
)
