/* placeholder */ typedef int ss_placeholder_store_hdf5;
