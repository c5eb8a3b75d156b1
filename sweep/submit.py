"""submission_ood.csv from the final model: the DL4DS OOD files predicted in their official order."""
from __future__ import annotations

import os

OOD_HOWTO = ("no OOD data given, so no submission_ood.csv was written. Get the 19 files "
             "distortion00.npy … distortion18.npy (GitHub: DL4DS/ood-test-files, folder ood-test/) into a "
             "folder and pass it with --ood-dir, or run `python -m robustness.generate` for a local labelled set")


def write(folder: str, ood_dir: str | None, model, device: str, say):
    """(note for the report, predictions (19, 5n) or None). An existing submission is kept (resume)."""
    if not ood_dir or not os.path.isdir(ood_dir):
        msg = OOD_HOWTO if not ood_dir else f"OOD folder {ood_dir} does not exist; {OOD_HOWTO}"
        say(msg)
        return msg, None
    from robustness.predict import predict_ood
    from robustness.submission import write_submission

    say(f"predicting the OOD set in {ood_dir}")
    preds = predict_ood(model, ood_dir, batch_size=1024, device=device)
    path = os.path.join(folder, "submission_ood.csv")
    write_submission(preds, path)
    say(f"wrote {path} ({preds.size} rows)")
    return f"submission_ood.csv written from {ood_dir} ({preds.size} predictions)", preds
