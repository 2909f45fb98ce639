# Frozen-encoder probe: how much an encoder already knows about CamVid. The encoder does not
# train (segmentor.freeze.encoder=True: no gradient, BatchNorm statistics fixed); the U-Net
# decoder and the classifier learn from the pixel labels of all 367 CamVid train frames for 200
# iterations and are tested on the 233 test frames. Not a strictly linear probe (the decoder
# has convolutions), the dense counterpart of one (as a frozen backbone + trained head in
# mmsegmentation). Compare the random-init encoder with a pretrained one:
#   python tools/train.py configs/probe/probe-frozen-encoder_unet-resnet18_200_camvid-128x128.py \
#       --cfg-options model.segmentor.encoder_checkpoint.file=<encoder.pth>
# (benchmarks/pretrained_encoder.py makes and prints the encoder of tools/pretrain.py).
_base_ = ['../source-only/source-only_unet-resnet18_200_camvid-128x128.py']
model = dict(segmentor=dict(freeze=dict(encoder=True)))
