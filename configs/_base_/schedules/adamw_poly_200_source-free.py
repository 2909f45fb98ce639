# Source-free fine-tuning of a trained model: the 200-iteration AdamW poly schedule at a tenth
# of its from-scratch learning rate (2e-4), so self-training refines the loaded model rather
# than re-learning it; validation and checkpoint at the end.
_base_ = ['./adamw_poly_200.py']
optim_wrapper = dict(optimizer=dict(lr=2e-4))
