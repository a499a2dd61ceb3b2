/* The subcommands of the sirenstack program (pipeline/engine/main.c dispatches). */
#ifndef SS_COMMANDS_H
#define SS_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_stages(int argc, char **argv);
int cmd_schema(int argc, char **argv);
int cmd_synth(int argc, char **argv); /* pipeline/engine/cmd_synth.c */
int cmd_version(int argc, char **argv);
int cmd_submit(int argc, char **argv); /* pipeline/engine/cmd_submit.c */

/* Loads a config, printing every problem found (commands.c). */
typedef struct config config;
int load_config(const char *path, config **c);
/* Opens CONTAINER (.zarr: Zarr, else HDF5) with store_open's flags (commands.c). */
typedef struct store store;
int open_container_flags(const char *path, int flags, store **st);
int cmd_pack(int argc, char **argv); /* pipeline/engine/cmd_pack.c */

#endif
