/* placeholder */ typedef int ss_placeholder_import_hdf5;
