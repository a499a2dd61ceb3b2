/* placeholder */ typedef int ss_placeholder_graph;
