"""Packs an image folder's JPEG bytes into one .npy blob + index (device transport only)."""
import os, sys, json
import numpy as np
root, out = sys.argv[1], sys.argv[2]
paths, sizes = [], []
for split in ('train', 'test'):
  for dirpath, _, files in sorted(os.walk(os.path.join(root, split))):
    for f in sorted(files):
      p = os.path.join(dirpath, f)
      paths.append(os.path.relpath(p, root)); sizes.append(os.path.getsize(p))
blob = np.empty(sum(sizes), np.uint8)
o = 0
for p, s in zip(paths, sizes):
  blob[o:o+s] = np.frombuffer(open(os.path.join(root, p), 'rb').read(), np.uint8); o += s
np.save(out + '.npy', blob)
json.dump({'paths': paths, 'sizes': sizes}, open(out + '.json', 'w'))
print(len(paths), o)
