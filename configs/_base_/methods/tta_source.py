# The unadapted source model on a test-time stream: the baseline of every test-time method.
# tools/adapt.py and benchmarks/test_time.py run it through the same loop (TestTimeAdaptLoop)
# so that its cost is measured the same way: one forward per batch, BatchNorm with the source
# statistics (norm.prior_strength=None), nothing trained.
model = dict(type='Adapter', terms=dict(stats=dict(type='PredictionStatistics', branch='target')))
test_cfg = dict(
    type='TestTimeAdaptLoop',
    reset='continual',
    steps=1,  # the statistics forward is the prediction (nothing trains)
    norm=dict(prior_strength=None),
    predict_with='student',
)
