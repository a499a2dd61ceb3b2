/* placeholder */ typedef int ss_placeholder_store_zarr;
