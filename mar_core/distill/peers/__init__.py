"""The loss modules of the peer methods compared against MAR (``docs/mar-method.md`` s. 6).

One module per method: ``feature_mse``, ``fgd``, ``mgd``, ``pkd``, ``cwd`` (FPN outputs);
``pkd_head``, ``cwd_head`` (the same at the classification tower, ``cls_tower.py``);
``logit_kd``, ``crosskd`` (one-stage heads' predictions, ``head_ops.py``). They are registered,
with their spec models, in ``mar_core.methods.METHODS``; ``mar_core.distill.build_peer`` builds one.
"""
