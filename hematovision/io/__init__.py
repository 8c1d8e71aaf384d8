"""What comes in: pictures, folders and archives, read safely and framed for the model.

- ``images``: the one function that turns any upload into the model's input;
- ``cell_finder``: where the white cell is (framing); ``focus``: how sharp it is;
- ``decoding``: many files at once, in parallel;
- ``archive``: safe zip reading; ``folders``: walking a folder, within limits;
- ``dataset``: scanning a folder of class folders, de-duplicating, splitting;
- ``data_home``: where the datasets live (``$HEMATOVISION_DATASETS``);
- ``files``: files written whole or not at all, and their sha256.
"""

from hematovision.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "images": ("read_image", "ImageError", "ImageLimits", "IMAGE_SUFFIXES", "to_model_input",
               "frame_image"),
    "focus": ("sharpness",),
    "cell_finder": ("CellBox", "find_cell"),
    "decoding": ("decode_images", "run_in_batches"),
    "archive": ("read_zip", "zip_folder", "ArchiveError"),
    "folders": ("files_under", "FolderLimits"),
    "dataset": ("scan_folder", "split_dataset", "split_files", "test_split_files",
                "SplitFractions"),
    "data_home": ("datasets_dir",),
    "files": ("write_json_atomic", "write_text_atomic", "sha256_of_file"),
})
