# SAC on GTA5 -> Cityscapes warm-started from da-sac's published ABN snapshot, as the reference
# trains its final model (visinf/da-sac README "Training with augmentation consistency": RESUME
# = the ABN baseline). The snapshot (40.8 mIoU on Cityscapes val, 336 MB, MD5 9fe17[...]c11fc):
#   https://download.visinf.informatik.tu-darmstadt.de/data/2021-cvpr-araslanov-da-sac/snapshots/baselines/resnet101_gta/baseline_abn_e040.pth
# saved as $UDA_WEIGHTS/da-sac/resnet101_gta/baseline_abn_e040.pth (default folder:
# ./pretrained), then one command:
#   python tools/train.py \
#       configs/sac/sac-dasac-abn_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py
# load_from reads the da-sac file directly (converted in memory, layout DaSac); its network is
# the Caffe-style ResNet (stride on each bottleneck's 1x1 conv1, ceil_mode max pool), so the
# segmentor here is too (tools/train.py checks it). Input: RGB with ImageNet mean / std, the
# model base's. Reported: 53.8 mIoU on Cityscapes val (da-sac final_e136.pth).
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = ['./sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py']  # SAC at the reference
model = dict(segmentor=dict(encoder_style='caffe'))
load_from = '{{$UDA_WEIGHTS:pretrained}}/da-sac/resnet101_gta/baseline_abn_e040.pth'
