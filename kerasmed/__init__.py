"""kerasmed: medical-image segmentation and classification networks for Keras 3.

Sub-packages:
    kerasmed.models    model builders and the registry (``kerasmed.models.build``)
    kerasmed.losses    segmentation losses, registered Keras objects
    kerasmed.metrics   segmentation metrics, registered Keras objects
    kerasmed.data      image I/O, dataset readers, PyDataset loaders, the synthetic dataset
    kerasmed.training  the trainer, callbacks and run directories
    kerasmed.config    experiment files: schema and validation
"""

__version__ = "0.1.0"
