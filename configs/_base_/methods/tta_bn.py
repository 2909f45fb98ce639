# BN-adapt (Schneider et al., NeurIPS 2020, arXiv:2006.16971): BatchNorm layers normalise with
# N/(N+n) x source + n/(N+n) x test-batch statistics (n images per batch, N the prior strength;
# bethgelab/robustness examples/batchnorm/src/evaluate.py:343-351). No weight changes; the
# running statistics are never written, so every batch starts from the source ones (stateless:
# continual and episodic are the same). uda.engine.test_time.prior_batch_norm.
model = dict(type='Adapter', terms=dict(stats=dict(type='PredictionStatistics', branch='target')))
test_cfg = dict(
    type='TestTimeAdaptLoop',
    reset='continual',
    steps=1,  # the statistics forward is the prediction (no second forward)
    # N = 9: mdtta's BN--0.1 (alpha = 0.1 of the test statistics at batch 1,
    # mariodoebler/test-time-adaptation segmentation/conf.py:141); 0 = test batch only.
    norm=dict(prior_strength=9),
    predict_with='student',
)
