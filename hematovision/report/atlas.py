"""Teaching notes for each cell class, and the model's confusions taken from its evaluation.

Normal shares of the adult white-cell differential are typical reference intervals from
B. J. Bain, *Blood Cells: A Practical Guide*, 5th ed. (Wiley-Blackwell, 2015); every
laboratory sets its own, so read them as orders of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClassNotes", "ATLAS", "REFERENCE", "notes_for", "common_name", "confusions"]

REFERENCE = ("B. J. Bain, Blood Cells: A Practical Guide, 5th ed., Wiley-Blackwell 2015 "
             "(typical adult reference intervals; each laboratory sets its own).")


@dataclass(frozen=True)
class ClassNotes:
    name: str
    title: str
    look_for: tuple[str, ...]
    normal_share: str
    often_confused_with: str


ATLAS: dict[str, ClassNotes] = {n.name: n for n in (
    ClassNotes(
        "neutrophil", "Neutrophil (segmented and band)",
        ("Nucleus in 2–5 lobes joined by thin strands (segmented), or a curved, unsegmented "
         "band of even width (band form).",
         "Clumped, dark chromatin.",
         "Pale pink-lilac cytoplasm with fine, barely visible granules.",
         "About 12–15 µm: roughly twice the diameter of a red cell."),
        "About 40–75 % of white cells (band forms only a few %).",
        "Band forms with metamyelocytes (immature granulocytes); hypogranular forms with "
        "monocytes."),
    ClassNotes(
        "eosinophil", "Eosinophil",
        ("Usually two nuclear lobes, like spectacles.",
         "Cytoplasm packed with large, round, orange-red granules of even size.",
         "About 12–17 µm."),
        "About 1–6 % of white cells.",
        "Neutrophils with coarse (toxic) granulation; basophils when the stain is dark."),
    ClassNotes(
        "basophil", "Basophil",
        ("Large, dark purple-black granules that cover and hide the nucleus.",
         "Nucleus often bilobed but hard to see.",
         "About 10–14 µm."),
        "Less than about 1–2 % of white cells.",
        "Eosinophils in heavily stained smears; granular lymphocytes or platelets overlying "
        "a cell."),
    ClassNotes(
        "lymphocyte", "Lymphocyte",
        ("Round, dense nucleus filling most of the cell.",
         "A thin rim of clear blue cytoplasm (larger lymphocytes have more, sometimes with a "
         "few red granules).",
         "Small ones are about the size of a red cell (7–10 µm)."),
        "About 20–45 % of white cells.",
        "Erythroblasts (also round dark nuclei, but with coarser chromatin and pinker "
        "cytoplasm); monocytes for large lymphocytes."),
    ClassNotes(
        "monocyte", "Monocyte",
        ("The largest normal white cell (15–20 µm).",
         "Folded, kidney- or horseshoe-shaped nucleus with lacy chromatin.",
         "Abundant grey-blue 'ground-glass' cytoplasm, often with vacuoles."),
        "About 2–10 % of white cells.",
        "Large lymphocytes; immature granulocytes (myelocytes) and band neutrophils."),
    ClassNotes(
        "ig", "Immature granulocyte (promyelocyte, myelocyte, metamyelocyte)",
        ("Precursors of the neutrophil, normally confined to the bone marrow.",
         "Promyelocyte: large, with coarse purple (primary) granules; myelocyte: round "
         "eccentric nucleus and a pale area beside it; metamyelocyte: kidney-shaped nucleus.",
         "Cytoplasm bluer than a mature neutrophil's."),
        "Normally below about 1 % in adult blood; more in infection, pregnancy or marrow "
        "disease.",
        "Band neutrophils (metamyelocytes) and monocytes (myelocytes)."),
    ClassNotes(
        "erythroblast", "Erythroblast (nucleated red cell)",
        ("A red-cell precursor that still has its nucleus: small, round, very dense, often "
         "off-centre.",
         "Cytoplasm from blue (early) to pink-grey like a red cell (late).",
         "Counted per 100 white cells, not as a white cell."),
        "Absent in healthy adult blood; present in newborns and in marrow stress or "
        "infiltration.",
        "Small lymphocytes."),
    ClassNotes(
        "platelet", "Platelet (clump or giant platelet)",
        ("Small (2–3 µm) purple fragments without a nucleus, often in clumps.",
         "Fine purple granules in a pale background.",
         "Not a white cell; clumps can be counted as one by an analyser."),
        "Not part of the white-cell differential (count about 150–400 × 10⁹/L).",
        "Basophils or debris when a clump lies on top of a cell."),
)}


def notes_for(name: str) -> ClassNotes | None:
    return ATLAS.get(name.lower())


def common_name(name: str) -> str:
    """The class as the atlas spells it, without its details: "ig" → "Immature
    granulocyte", "neutrophil" → "Neutrophil"; a class without notes keeps its own name."""
    notes = notes_for(name)
    return notes.title.split(" (")[0] if notes else name


def confusions(matrix: list[list[int]], classes: list[str], name: str, top: int = 2
               ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """How the model confuses ``name`` on its test split.

    Returns the classes its cells were most often called (each with its share of the
    true ``name`` cells), and what the cells the model called ``name`` truly were (each
    with its share of those answers: how far a "``name``" from this model can be trusted).
    """
    counts = np.asarray(matrix, dtype=float)
    i = classes.index(name)
    row = counts[i] / max(counts[i].sum(), 1)
    called_as = [(classes[j], float(row[j])) for j in np.argsort(-row, kind="stable")
                 if j != i and row[j] > 0][:top]
    column = counts[:, i] / max(counts[:, i].sum(), 1)
    taken_for = [(classes[j], float(column[j])) for j in np.argsort(-column, kind="stable")
                 if j != i and column[j] > 0][:top]
    return called_as, taken_for
