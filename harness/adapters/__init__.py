"""Built-in adapters: the model itself (``reference``) and scapy (``scapy``)."""
