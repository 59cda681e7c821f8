-- The official image set (seed 002), with seed 000's example as its first image.
INSERT INTO images (name, display_name, description, category, framework, framework_version, frameworks,
                    cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, repository, tag,
                    digest, size, arch, os, is_official, visibility, owner, status, publication, origin,
                    created_by, updated_by, created_at, updated_at)
VALUES
  ('ubuntu20-pytorch:2.0', 'Ubuntu 20.04 + PyTorch 2.0',
   '深度学习训练环境，包含 PyTorch 2.0、CUDA 11.8、Python 3.10', 'pytorch', 'pytorch', '2.0.0', '["PyTorch"]',
   '11.8', 1, '3.10', 'GPU', '["开发机","训练","推理"]', 'harbor.remotegpu.com', 'library/ubuntu20-pytorch', '2.0',
   'sha256:5d3c1f6f2b1a9e4c7d8b0a6e3f2c1d9b8a7e6f5d4c3b2a1908f7e6d5c4b3a291', 8589934592, 'amd64', 'linux',
   1, 'public', 'admin', 'ready', 'online', 'seed', 'admin', 'admin', '2026-01-20T10:00:00.000Z', '2026-01-20T10:00:00.000Z'),
  ('ubuntu20-tensorflow:2.12', 'Ubuntu 20.04 + TensorFlow 2.12',
   '深度学习训练环境，包含 TensorFlow 2.12、CUDA 11.8、Python 3.10', 'tensorflow', 'tensorflow', '2.12.0', '["TensorFlow"]',
   '11.8', 1, '3.10', 'GPU', '["开发机","训练","推理"]', 'harbor.remotegpu.com', 'library/ubuntu20-tensorflow', '2.12',
   'sha256:8a1e2b3c4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9', 7516192768, 'amd64', 'linux',
   1, 'public', 'admin', 'ready', 'online', 'seed', 'admin', 'admin', '2026-01-20T10:05:00.000Z', '2026-01-20T10:05:00.000Z'),
  ('ubuntu22-cuda:12.0', 'Ubuntu 22.04 + CUDA 12.0',
   '基础 CUDA 环境，包含 CUDA 12.0、cuDNN 8、Python 3.10，不含深度学习框架', 'cuda', NULL, NULL, '[]',
   '12.0', 1, '3.10', 'GPU', '["开发机","训练"]', 'harbor.remotegpu.com', 'library/ubuntu22-cuda', '12.0',
   'sha256:0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f', 5368709120, 'amd64', 'linux',
   1, 'public', 'admin', 'ready', 'online', 'seed', 'admin', 'admin', '2026-01-20T10:10:00.000Z', '2026-01-20T10:10:00.000Z'),
  ('ubuntu20-jupyter:latest', 'Ubuntu 20.04 + JupyterLab',
   '交互式开发环境，包含 JupyterLab 4.0、CUDA 11.8、Python 3.10', 'jupyter', 'jupyterlab', '4.0.2', '["JupyterLab"]',
   '11.8', 1, '3.10', 'GPU', '["开发机"]', 'harbor.remotegpu.com', 'library/ubuntu20-jupyter', 'latest',
   'sha256:3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c', 6442450944, 'amd64', 'linux',
   1, 'public', 'admin', 'ready', 'online', 'seed', 'admin', 'admin', '2026-01-20T10:15:00.000Z', '2026-01-20T10:15:00.000Z')
ON CONFLICT (name) DO NOTHING;

INSERT INTO image_scopes (image_id, scope)
SELECT id, '开发机' FROM images WHERE origin = 'seed'
ON CONFLICT DO NOTHING;
INSERT INTO image_scopes (image_id, scope)
SELECT id, '训练' FROM images WHERE origin = 'seed' AND name <> 'ubuntu20-jupyter:latest'
ON CONFLICT DO NOTHING;
INSERT INTO image_scopes (image_id, scope)
SELECT id, '推理' FROM images WHERE origin = 'seed' AND name IN ('ubuntu20-pytorch:2.0', 'ubuntu20-tensorflow:2.12')
ON CONFLICT DO NOTHING;
