"""Section 5 of the TerraMind dialog: where the output files go (temporary, or a folder) and their name."""
from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QButtonGroup, QFormLayout, QHBoxLayout, QLineEdit, QRadioButton

from .dialog_fields import DIALOG_KEY
from .messages import MessageLabel
from .section_box import SectionBox


class OutputFilesSection(SectionBox):
    """Temporary files or a folder, the file-name prefix, and the list of files the job will write."""

    def __init__(self, job_name: str, parent=None):
        super().__init__("5 · Output", parent)
        row = QHBoxLayout()
        self.temporary_radio = QRadioButton("Temporary files")
        self.temporary_radio.setToolTip("Written to the system's temp folder; save the layers if you keep them")
        self.folder_radio = QRadioButton("Save to folder")
        self.output_group = QButtonGroup(self)
        self.output_group.addButton(self.temporary_radio)
        self.output_group.addButton(self.folder_radio)
        self.temporary_radio.setChecked(True)
        row.addWidget(self.temporary_radio)
        row.addWidget(self.folder_radio)
        row.addStretch(1)
        self.body.addLayout(row)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.folder_widget = QgsFileWidget()
        self.folder_widget.setObjectName("output_dir")
        self.folder_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder_widget.setDialogTitle("Folder for the TerraMind outputs")
        self.name_edit = QLineEdit(job_name)
        self.name_edit.setObjectName("job_name")
        self.name_edit.setToolTip("File names start with this: <name>_lulc.tif, <name>_ndvi.tif, …")
        form.addRow("Folder", self.folder_widget)
        form.addRow("Name", self.name_edit)
        self.body.addLayout(form)
        self.output_error = MessageLabel("error")
        self.output_hint = MessageLabel("hint")
        self.body.addWidget(self.output_error)
        self.body.addWidget(self.output_hint)
        self.temporary_radio.toggled.connect(self._follow_mode)
        self._follow_mode()

    def _follow_mode(self, *_) -> None:
        self.folder_widget.setEnabled(self.folder_radio.isChecked())

    def show_paths(self, paths: dict) -> None:
        """List the files the job will write (their names only), or nothing when there are none yet."""
        if paths:
            names = ", ".join(p.replace("\\", "/").rsplit("/", 1)[-1] for p in paths.values())
            self.output_hint.show_message(f"Writes {names}")
        else:
            self.output_hint.show_message(None)

    def save(self, settings) -> None:
        """Remember temporary vs folder (the folder itself is a plain field of `dialog_fields`)."""
        settings.set_value(DIALOG_KEY + "temporary", self.temporary_radio.isChecked())

    def restore(self, settings) -> None:
        temporary = settings.value(DIALOG_KEY + "temporary", True, bool)
        self.temporary_radio.setChecked(temporary)
        self.folder_radio.setChecked(not temporary)
