# Declarations that compile alloy/usage.py as alloy.usage (setup.py): read per answer by the listeners.
