"""MONAI Label: its environment (``mednet label setup``) and the app that serves mednet (``mednet label serve``)."""
