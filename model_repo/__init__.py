"""The Triton model repository: a typed catalog (``catalog``), the config renderer (``render``), the
Python-backend models (``python_models/``), CPU-target artifacts (``artifacts``) and a local Triton
server (``local_server``). ``python -m model_repo --help`` renders or serves a stack's repository."""
