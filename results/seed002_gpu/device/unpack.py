"""Rebuilds the image folder and the loader's decoded-array cache (PIL, no TensorFlow)."""
import os, sys, json, io
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np
blob_base, root, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
idx = json.load(open(blob_base + '.json')); blob = np.load(blob_base + '.npy')
o = 0
for p, s in zip(idx['paths'], idx['sizes']):
  f = root / p; f.parent.mkdir(parents=True, exist_ok=True)
  f.write_bytes(blob[o:o+s].tobytes()); o += s
from PIL import Image
def dec(p):
  return np.asarray(Image.open(root / p).convert('RGB'))
from isovolnet_jax import input_pipeline as ip
names = sorted(os.listdir(root / 'train'))
arrays = {}
with ProcessPoolExecutor(16) as ex:
  for split in ('train', 'test'):
    # ImageFolder's order: tfds lists files sorted per class; the loader's order is
    # whatever _to_arrays yields. Use sorted (class, file) order.
    ps = sorted(p for p in idx['paths'] if p.startswith(split + '/'))
    arrays[split + '_x'] = np.stack(list(ex.map(dec, ps, chunksize=500)))
    arrays[split + '_y'] = np.array([names.index(p.split('/')[1]) for p in ps], np.int64)
cache.mkdir(parents=True, exist_ok=True)
fp = ip.folder_fingerprint(root, 0)
np.savez(cache / f'folder-{fp}.npz', **arrays, names=np.array(names))
print('cache', fp, {k: v.shape for k, v in arrays.items()})
