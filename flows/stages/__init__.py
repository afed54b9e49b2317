"""One module per ``dvc.yaml`` stage: read its inputs, call components, write its outputs, log.

Each module's ``main`` is the ``ragtune <stage>`` command that dvc.yaml runs; it gets its params
through ``flows.common.stage``, which allows only the keys dvc.yaml declares for it.
"""
