"""One module per area of the staff app; each declares its own role guards."""
