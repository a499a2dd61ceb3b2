/* placeholder */ typedef int ss_placeholder_synth_smooth;
