/* placeholder */ typedef int ss_placeholder_blosc_filter;
