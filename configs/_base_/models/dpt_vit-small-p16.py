# DPT (Ranftl et al., ICCV 2021, arXiv:2103.13413; smp's `DPT`) on a plain ViT-S/16 from timm:
# the dense decoder for the non-hierarchical encoders that DINO / DINOv2 / MoCo v3 / MAE
# pretrain. smp's other decoders (UPerNet, Segformer, FPN ...) need a feature pyramid, which a
# plain ViT does not have. Block outputs 2, 5, 8, 11 (smp's uniform sampling) are reassembled
# at strides 4 / 8 / 16 / 32 and fused; `decoder_readout='cat'` also fuses the class token.
# encoder_kwargs go to timm.create_model: dynamic_img_size (default for DPT in SMPSegmentor)
# resamples the position embedding per input size; img_size sets the stored grid that a
# checkpoint's position embedding is resampled to when it loads.
# Plug a self-supervised file in with
#   encoder_checkpoint=dict(file='dino_deitsmall16_pretrain.pth', layout='auto')
# (docs/ssl_backbones.md); a DINOv2 ViT-S/14 file needs
#   encoder_name='tu-vit_small_patch14_dinov2', encoder_kwargs=dict(patch_size=16, img_size=...)
# (timm resamples its patch embedding to 16). Fine-tune with layer-wise lr decay:
#   optim_wrapper=dict(paramwise_cfg=dict(layer_decay=dict(rate=0.65)))
# (rate 0.65 and AdamW lr 1e-4: open-mmlab/mmsegmentation configs/mae/
# mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py, layer_decay_rate=0.65).
# Self-supervised inits, found or downloaded by uda/models/weights.py (docs/weights.md): the
# official DINOv2 backbone files (facebookresearch/dinov2 README.md "Pretrained models"; the
# same URLs are timm's pretrained_cfg of vit_{small,base}_patch14_dinov2.lvd142m), bare state
# dicts in DINOv2's names (layout 'dinov2'); no checksum published. timm's Hugging Face copy is
# accepted from the cache or hub when the official file is absent (timm names, layout 'auto').
# A ViT-S/14 or ViT-B/14 loads into encoder_name='tu-vit_{small,base}_patch14_dinov2' with
# encoder_kwargs=dict(patch_size=16, img_size=<crop>) (see below).
init_dinov2_vits14 = dict(
    file='dinov2_vits14_pretrain.pth',
    url='https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth',
    layout='dinov2',
    hf=dict(repo_id='timm/vit_small_patch14_dinov2.lvd142m', filename='model.safetensors'),
)
init_dinov2_vitb14 = dict(
    file='dinov2_vitb14_pretrain.pth',
    url='https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth',
    layout='dinov2',
    hf=dict(repo_id='timm/vit_base_patch14_dinov2.lvd142m', filename='model.safetensors'),
)
segmentor = dict(
    type='SMPSegmentor',
    arch='DPT',
    encoder_name='tu-vit_small_patch16_224',
    encoder_weights=None,
    encoder_kwargs=dict(img_size=224),
    num_classes=19,
    decoder_readout='cat',
    decoder_intermediate_channels=(96, 192, 384, 384),
    decoder_fusion_channels=128,
)
data_preprocessor = dict(
    type='SegDataPreprocessor',
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    # DPT halves the 16-pixel patch grid once and doubles it back: sides divisible by 32.
    size_divisor=32,
    seg_pad_val=255,
)
