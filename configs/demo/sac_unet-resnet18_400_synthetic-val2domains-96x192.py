# The SAC demo (sac_unet-resnet18_400_synthetic-96x192.py, unchanged training) validated on two
# domains in one run: the target scenes it adapts to and the source scenes it started from
# (does adaptation forget the source?). Each domain is scored alone and its numbers are named
# by it: synthetic-target/mIoU, synthetic-source/mIoU ... in the log, TensorBoard and
# metrics.json (uda/evaluation/domains.py); the first domain is the primary one.
_base_ = ['./sac_unet-resnet18_400_synthetic-96x192.py']
source_val = dict(
    type='SyntheticDataset', style='source', num_samples=100, seed=1000, size=_base_.scene_size
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='DomainDatasets',
        domains={'synthetic-target': _base_.target_val, 'synthetic-source': source_val},
    )
)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='DomainEvaluator', metrics=_base_.val_evaluator)
test_evaluator = val_evaluator
