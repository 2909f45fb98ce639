# The MaskedConsistency term of MIC alone (Hoyer et al., CVPR 2023, arXiv:2212.01322), as a
# variable and without `model`: MIC is built on a host method (DACS / HRDA) whose pseudo-labels
# it shares, so configs add it to that method by name (dacs_mic.py). Numbers of lhoyer/MIC
# seg/configs/mic/gtaHR2csHR_mic_hrda.py and seg/mmseg/models/uda/masking_consistency_module.py
# (mask_mode='separatetrgaug'): the target image colour-jittered (s 0.2, p 0.8) and blurred
# (p 0.5, sigma U(0.15, 1.15)), then masked by 64 px blocks, each masked with probability 0.7;
# labels and weights = the host's teacher pseudo-labels of the unmasked target; mask_lambda 1.
masked_consistency = dict(
    type='MaskedConsistency',
    weight=1.0,  # mask_lambda
    branch='target',
    labeller='teacher_quality',  # the host's labeller: one teacher forward per step
    block_size=64,  # mask_block_size
    mask_ratio=0.7,
    photometric=dict(preset='dacs_strong'),  # batch coins: masking_consistency_module.py:119
)
