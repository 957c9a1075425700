"""Dataset plugins: turn folders of images into a tlcore.dataset.DatasetIndex."""
