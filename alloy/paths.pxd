# Declarations that compile alloy/paths.py as alloy.paths (setup.py).
cpdef tuple path_and_query(target)
cpdef normalized(path)
cpdef origin_form(target)
