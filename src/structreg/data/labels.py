"""Label values of the label maps and the structures evaluated on them."""

# ACDC label values.
CARDIAC_LABELS = {"RV": 1, "LV myocardium": 2, "LV blood pool": 3}
# Structures reported in the paper's Table 1 (and the RV), as sets of label values.
CARDIAC_STRUCTURES = {
    "LV myocardium": (2,),
    "LV blood pool": (3,),
    "left heart": (2, 3),
    "RV": (1,),
}

# Brain phantom label values (ventricles are CSF too, kept apart to measure them).
BRAIN_LABELS = {"CSF": 1, "GM": 2, "WM": 3, "ventricles": 4}
BRAIN_STRUCTURES = {
    "CSF": (1, 4),
    "GM": (2,),
    "WM": (3,),
    "ventricles": (4,),
}
