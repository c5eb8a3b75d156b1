"""DL4DS OOD files, streaming OOD prediction, submission_ood.csv, CIFAR-100-C-style corruptions, robustness report.

Submodules are imported on use (`from robustness.ood import check_ood_dir`): the corruption suite pulls in
OpenCV and scikit-image, which prediction and submission writing do not need.
"""
