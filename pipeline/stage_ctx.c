/* placeholder */ typedef int ss_placeholder_stage_ctx;
