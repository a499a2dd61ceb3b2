/* placeholder */ typedef int ss_placeholder_table;
