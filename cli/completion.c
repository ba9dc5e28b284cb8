/*
 * Completion scripts (see completion.h).
 *
 * Both scripts are two parts: the data, written here from the tables (the
 * first words, each group's subcommands, each command's options, the
 * options that take a value, the kinds of values), as functions that set
 * _raftq_r, which bash and zsh read alike; then a driver of the shell's
 * own. The driver walks the words before the cursor as cmdline_parse()
 * does (an option is "--name" or -h, a value-taking option without "="
 * takes the next word, "--" ends the options, "help" before a command is
 * skipped), finds the command, and completes the word at the cursor: an
 * option's value, an option of the command, a command word, or the
 * command's first argument.
 */
#include "completion.h"

#include <string.h>

#include "cmdline.h"
#include "rq_err.h"
#include "rq_version.h"

/* What a value is, for the driver: "profiles" (the names raftq profile
 * list --names prints), "files", "dirs" or "words:W1 W2...". */
static const struct {
    const char *option;
    const char *kind;
} value_kinds[] = {
    {"profile", "profiles"},
    {"cacert", "files"},
    {"data", "dirs"},
    {"format", "words:json"},
};

/* The kind of a command's first argument; "shells" stands for the shells
 * below. */
static const struct {
    enum cmd cmd;
    const char *kind;
} arg_kinds[] = {
    {CMD_PROFILE_USE, "profiles"},
    {CMD_PROFILE_SHOW, "profiles"},
    {CMD_PROFILE_DELETE, "profiles"},
    {CMD_COMPLETION, "shells"},
};

static const char *const shells[] = {"bash", "zsh"};

bool completion_shell_known(const char *shell)
{
    for (size_t i = 0; i < sizeof shells / sizeof shells[0]; i++) {
        if (strcmp(shell, shells[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- The data, from the tables ---- */

/* Whether command @i is the first with its first word. */
static bool first_of_word(size_t i)
{
    struct cmdline_command c, d;
    cmdline_command_at(i, &c);
    for (size_t j = 0; j < i; j++) {
        cmdline_command_at(j, &d);
        if (strcmp(c.group, d.group) == 0) {
            return false;
        }
    }
    return true;
}

/* The options that apply to @cmd, or with @top those a line may start
 * with (the global ones, --help and --version), separated by blanks. */
static void write_options(enum cmd cmd, bool top, FILE *f)
{
    struct cmdline_option o;
    const char *sep = "";
    for (size_t i = 0; cmdline_option_at(i, &o); i++) {
        if (cmdline_option_applies(o.name, cmd) || (top && o.global)) {
            fprintf(f, "%s--%s", sep, o.name);
            sep = " ";
        }
    }
}

/* Opens command @c's arm of a case: "        'topic create') _raftq_r='". */
static void write_arm(const struct cmdline_command *c, FILE *f)
{
    if (c->sub != NULL) {
        fprintf(f, "        '%s %s') _raftq_r='", c->group, c->sub);
    } else {
        fprintf(f, "        %s) _raftq_r='", c->group);
    }
}

static void write_data(FILE *f)
{
    struct cmdline_command c, d;
    struct cmdline_option o;

    fputs("_raftq_words='", f);
    for (size_t i = 0; cmdline_command_at(i, &c); i++) {
        if (first_of_word(i)) {
            fprintf(f, "%s ", c.group);
        }
    }
    /* "raftq help topic create" is "raftq topic create --help". */
    fputs("help'\n", f);

    fputs("_raftq_valued='", f);
    for (size_t i = 0; cmdline_option_at(i, &o); i++) {
        if (o.has_value) {
            fprintf(f, " --%s", o.name);
        }
    }
    fputs(" '\n\n", f);

    fputs(
        "# The subcommands of group word $1 (none: a command of one word).\n"
        "_raftq_subs() {\n"
        "    case $1 in\n",
        f);
    for (size_t i = 0; cmdline_command_at(i, &c); i++) {
        if (c.sub == NULL || !first_of_word(i)) {
            continue;
        }
        fprintf(f, "        %s) _raftq_r='", c.group);
        const char *sep = "";
        for (size_t j = i; cmdline_command_at(j, &d); j++) {
            if (strcmp(c.group, d.group) == 0) {
                fprintf(f, "%s%s", sep, d.sub);
                sep = " ";
            }
        }
        fputs("' ;;\n", f);
    }
    fputs("        *) _raftq_r= ;;\n    esac\n}\n\n", f);

    fputs(
        "# The options of command $1 ('': before any command; -: a group "
        "word alone).\n"
        "_raftq_opts() {\n"
        "    case $1 in\n"
        "        '') _raftq_r='",
        f);
    write_options(CMD_NONE, true, f);
    fputs("' ;;\n", f);
    for (size_t i = 0; cmdline_command_at(i, &c); i++) {
        write_arm(&c, f);
        write_options(c.cmd, false, f);
        fputs("' ;;\n", f);
    }
    fputs("        *) _raftq_r='", f);
    write_options(CMD_NONE, false, f);
    fputs("' ;;\n    esac\n}\n\n", f);

    fputs(
        "# The kind of value option $1 takes.\n"
        "_raftq_value() {\n"
        "    case $1 in\n",
        f);
    for (size_t i = 0; i < sizeof value_kinds / sizeof value_kinds[0]; i++) {
        fprintf(f, "        --%s) _raftq_r='%s' ;;\n", value_kinds[i].option,
                value_kinds[i].kind);
    }
    fputs("        *) _raftq_r= ;;\n    esac\n}\n\n", f);

    fputs(
        "# The kind of argument $2 (from 0) of command $1.\n"
        "_raftq_arg() {\n"
        "    _raftq_r=\n"
        "    [ \"$2\" = 0 ] || return 0\n"
        "    case $1 in\n",
        f);
    for (size_t i = 0; i < sizeof arg_kinds / sizeof arg_kinds[0]; i++) {
        for (size_t j = 0; cmdline_command_at(j, &c); j++) {
            if (c.cmd != arg_kinds[i].cmd) {
                continue;
            }
            write_arm(&c, f);
            if (strcmp(arg_kinds[i].kind, "shells") == 0) {
                fputs("words:", f);
                for (size_t k = 0; k < sizeof shells / sizeof shells[0]; k++) {
                    fprintf(f, "%s%s", k > 0 ? " " : "", shells[k]);
                }
            } else {
                fputs(arg_kinds[i].kind, f);
            }
            fputs("' ;;\n", f);
        }
    }
    fputs("    esac\n}\n\n", f);
}

/* ---- The drivers ---- */

/*
 * What both drivers do alike, in the words of both shells: the body of
 * the loop over the words before the cursor, x each in turn (a word is an
 * option, the value of the option before it, or a positional word, as the
 * parser reads them), and the command key the positional words make.
 */
#define DRIVER_WALK                                                          \
    "        if [[ -n $skip ]]; then\n"                                      \
    "            skip=\n"                                                    \
    "        elif [[ -z $dd && $x == -- ]]; then\n"                          \
    "            dd=1\n"                                                     \
    "        elif [[ -z $dd && ($x == --?* || $x == -h) ]]; then\n"          \
    "            if [[ $x != *=* && $_raftq_valued == *\" $x \"* ]]; then\n" \
    "                skip=1\n"                                               \
    "                vopt=$x\n"                                              \
    "            fi\n"                                                       \
    "        else\n"                                                         \
    "            pos+=(\"$x\")\n"                                            \
    "        fi\n"                                                           \
    "    done\n"
#define DRIVER_KEY                                  \
    "    if ((np >= 1)); then\n"                    \
    "        _raftq_subs \"${pos[k]}\"\n"           \
    "        if [[ -z $_raftq_r ]]; then\n"         \
    "            key=${pos[k]}\n"                   \
    "            na=$((np - 1))\n"                  \
    "        elif ((np >= 2)); then\n"              \
    "            key=\"${pos[k]} ${pos[k + 1]}\"\n" \
    "            na=$((np - 2))\n"                  \
    "        else\n"                                \
    "            group=1\n"                         \
    "        fi\n"                                  \
    "    fi\n"

static const char bash_driver[] =
    "# Completes the line up to the cursor: the words are split at blanks\n"
    "# alone (COMP_WORDS also splits at = and :, which URLs hold).\n"
    "_raftq() {\n"
    "    local IFS=$' \\t\\n' line=${COMP_LINE:0:COMP_POINT}\n"
    "    local cur x i n np na k=0 key= vopt= dd= skip= group=\n"
    "    local -a w pos\n"
    "    read -ra w <<< \"$line\"\n"
    "    [[ -z $line || $line == *[[:space:]] ]] && w+=(\"\")\n"
    "    n=${#w[@]}\n"
    "    cur=${w[n-1]}\n"
    "    for ((i = 1; i < n - 1; i++)); do\n"
    "        x=${w[i]}\n" DRIVER_WALK
    "    [[ ${pos[0]} == help ]] && k=1\n"
    "    np=$((${#pos[@]} - k))\n" DRIVER_KEY
    "    COMPREPLY=()\n"
    "    if [[ -n $skip ]]; then\n"
    "        _raftq_value \"$vopt\"\n"
    "        _raftq_add \"$_raftq_r\" \"$cur\" \"${w[0]}\"\n"
    "    elif [[ -z $dd && $cur == --*=* ]]; then\n"
    "        _raftq_value \"${cur%%=*}\"\n"
    "        _raftq_add \"$_raftq_r\" \"${cur#*=}\" \"${w[0]}\"\n"
    "    elif [[ -z $dd && $cur == -* ]]; then\n"
    "        if ((np == 0)); then\n"
    "            _raftq_opts ''\n"
    "        elif [[ -n $group ]]; then\n"
    "            _raftq_opts -\n"
    "        else\n"
    "            _raftq_opts \"$key\"\n"
    "        fi\n"
    "        _raftq_add \"words:$_raftq_r\" \"$cur\"\n"
    "    elif ((np == 0)); then\n"
    "        _raftq_add \"words:$_raftq_words\" \"$cur\"\n"
    "    elif [[ -n $group ]]; then\n"
    "        _raftq_add \"words:$_raftq_r\" \"$cur\"\n"
    "    else\n"
    "        _raftq_arg \"$key\" \"$na\"\n"
    "        _raftq_add \"$_raftq_r\" \"$cur\" \"${w[0]}\"\n"
    "    fi\n"
    "}\n"
    "\n"
    "# Adds the candidates of kind $1 that start with $2 ($3: the raftq to "
    "ask\n"
    "# for profile names).\n"
    "_raftq_add() {\n"
    "    case $1 in\n"
    "        profiles)\n"
    "            mapfile -t COMPREPLY < <(compgen -W \\\n"
    "                \"$(\"$3\" profile list --names 2>/dev/null)\" -- \"$2\") "
    ";;\n"
    "        files)\n"
    "            compopt -o filenames 2>/dev/null\n"
    "            mapfile -t COMPREPLY < <(compgen -f -- \"$2\") ;;\n"
    "        dirs)\n"
    "            compopt -o filenames 2>/dev/null\n"
    "            mapfile -t COMPREPLY < <(compgen -d -- \"$2\") ;;\n"
    "        words:*)\n"
    "            mapfile -t COMPREPLY < <(compgen -W \"${1#words:}\" -- "
    "\"$2\") ;;\n"
    "    esac\n"
    "}\n"
    "\n"
    "complete -F _raftq raftq\n";

static const char zsh_driver[] =
    "# Completes the word at the cursor from the words before it.\n"
    "_raftq() {\n"
    "    emulate -L zsh\n"
    "    local cur=${words[CURRENT]} x i np na k=1 key= vopt= dd= skip= "
    "group=\n"
    "    local -a pos\n"
    "    for ((i = 2; i < CURRENT; i++)); do\n"
    "        x=${words[i]}\n" DRIVER_WALK
    "    [[ ${pos[1]} == help ]] && k=2\n"
    "    np=$((${#pos} - k + 1))\n" DRIVER_KEY
    "    if [[ -n $skip ]]; then\n"
    "        _raftq_value \"$vopt\"\n"
    "        _raftq_add \"$_raftq_r\"\n"
    "    elif [[ -z $dd && $cur == --*=* ]]; then\n"
    "        _raftq_value \"${cur%%=*}\"\n"
    "        compset -P '*='\n"
    "        _raftq_add \"$_raftq_r\"\n"
    "    elif [[ -z $dd && $cur == -* ]]; then\n"
    "        if ((np == 0)); then\n"
    "            _raftq_opts ''\n"
    "        elif [[ -n $group ]]; then\n"
    "            _raftq_opts -\n"
    "        else\n"
    "            _raftq_opts \"$key\"\n"
    "        fi\n"
    "        _raftq_add \"words:$_raftq_r\"\n"
    "    elif ((np == 0)); then\n"
    "        _raftq_add \"words:$_raftq_words\"\n"
    "    elif [[ -n $group ]]; then\n"
    "        _raftq_add \"words:$_raftq_r\"\n"
    "    else\n"
    "        _raftq_arg \"$key\" \"$na\"\n"
    "        _raftq_add \"$_raftq_r\"\n"
    "    fi\n"
    "}\n"
    "\n"
    "# Adds the candidates of kind $1; zsh keeps those that match.\n"
    "_raftq_add() {\n"
    "    case $1 in\n"
    "        profiles)\n"
    "            compadd -- ${(f)\"$(${words[1]} profile list --names "
    "2>/dev/null)\"} ;;\n"
    "        files) _files ;;\n"
    "        dirs) _directories ;;\n"
    "        words:*) compadd -- ${=${1#words:}} ;;\n"
    "    esac\n"
    "}\n"
    "\n"
    "if [[ $funcstack[1] == _raftq ]]; then\n"
    "    _raftq \"$@\" # Autoloaded from $fpath: complete at once.\n"
    "elif (( $+functions[compdef] )); then\n"
    "    compdef _raftq raftq\n"
    "else\n"
    "    print -u2 'raftq completion: no compdef; load it first: autoload -U "
    "compinit && compinit'\n"
    "fi\n";

int completion_write(const char *shell, FILE *f)
{
    bool zsh = strcmp(shell, "zsh") == 0;
    if (!completion_shell_known(shell)) {
        return RQ_INVALID;
    }
    if (zsh) {
        /* First: zsh reads it in a file of $fpath. */
        fputs("#compdef raftq\n", f);
    }
    fprintf(f,
            "# %s completion for raftq %s, made by 'raftq completion %s' "
            "from its\n"
            "# command line's tables: make it again after an upgrade.\n",
            shell, rq_version(), shell);
    if (zsh) {
        fputs(
            "#   source <(raftq completion zsh)    in ~/.zshrc, after "
            "compinit; or save it\n"
            "#   as _raftq in a directory of $fpath.\n\n",
            f);
    } else {
        fputs(
            "#   source <(raftq completion bash)   in ~/.bashrc; or save it "
            "as\n"
            "#   ~/.local/share/bash-completion/completions/raftq.\n\n",
            f);
    }
    write_data(f);
    fputs(zsh ? zsh_driver : bash_driver, f);
    return 0;
}
