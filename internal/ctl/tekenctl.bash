# bash completion for tekenctl                         -*- shell-script -*-
# Install as /usr/share/bash-completion/completions/tekenctl, or
#   source <(tekenctl completion bash)

_tekenctl() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
    fi

    local commands="audit completion demo dispatch fleet keygen results token verify version"
    local settings="--config --broker --ca --cert --key --root --username"

    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi

    case $prev in
        --out|--db|--signer|--config|--ca|--cert|--key|--dispatcher-key|--sig)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --state|--dir)
            COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --alg)
            COMPREPLY=($(compgen -W "ES256 Ed25519" -- "$cur")); return ;;
        --format)
            COMPREPLY=($(compgen -W "cms raw" -- "$cur")); return ;;
    esac

    local flags=""
    case ${words[1]} in
        keygen)   flags="--alg --out" ;;
        dispatch) flags="$settings --dispatcher-key --terminal --signer --title --number --from --expires --format --wait --timeout" ;;
        results)  flags="$settings --dispatcher-key --follow --json --out --timeout --client-id" ;;
        verify)   flags="--config --ca --sig" ;;
        fleet)    flags="$settings --json --watch --quiet" ;;
        audit)
            if [[ $cword -eq 2 ]]; then
                COMPREPLY=($(compgen -W "export verify" -- "$cur")); return
            fi
            flags="--db --timeout" ;;
        token)
            if [[ $cword -eq 2 ]]; then
                COMPREPLY=($(compgen -W "sim" -- "$cur")); return
            fi
            flags="--state --name --nip --reader-addr --pcscd" ;;
        completion)
            COMPREPLY=($(compgen -W "bash" -- "$cur")); return ;;
        demo)     flags="--tekend --dir" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _tekenctl tekenctl
