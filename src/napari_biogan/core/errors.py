"""Typed errors a user can cause. Each carries one plain sentence for the GUI and CLI."""


class BioGanError(Exception):
    """Base class: the message is a plain sentence meant for the user."""


class DataError(BioGanError):
    """Input data that cannot be used: wrong shape or dtype, empty folder, unreadable file."""


class ModelFileError(BioGanError):
    """A file that is not a napari-biogan model, or is damaged, or is of a newer format."""


class FamilyMismatchError(ModelFileError):
    """A valid model file of another family than the one asked for."""


class UnknownFamilyError(BioGanError):
    """A family name that no registered family has."""


class OutputExistsError(BioGanError):
    """Refusing to overwrite an existing file without being asked to."""


class WriteError(BioGanError):
    """A path that cannot be written."""


class DeviceError(BioGanError):
    """A device that is not available, or out of memory on it."""


class TrainingDivergedError(BioGanError):
    """Losses became NaN or infinite; the last good state was kept."""

    def __init__(self, message: str, step: int, kept_path: str | None = None):
        super().__init__(message)
        self.step = step
        self.kept_path = kept_path
