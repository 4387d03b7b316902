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

    local commands="audit completion demo dispatch doctor fleet help keygen results route token verify version"
    local common="--help --verbose -v"
    local settings="--config --broker --ca --cert --key --root --username"
    local dispatcher="--dispatcher-key --max-message-bytes"

    # --verbose and --version may come before the command.
    local at=1
    while [[ $at -lt $cword && ${words[at]} == -* ]]; do
        at=$((at + 1))
    done
    if [[ $cword -eq $at ]]; then
        COMPREPLY=($(compgen -W "$commands --help --verbose --version -v" -- "$cur"))
        return
    fi
    local command=${words[at]}

    case $prev in
        --out|--db|--ledger|--pdf|--signer|--config|--ca|--cert|--key|--dispatcher-key|--sig|--tekend|--tsa-ca|--crl|--profile|--pin-file|--new-pin-file|--new-puk-file)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --state|--dir|--out-dir)
            COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --alg)
            COMPREPLY=($(compgen -W "ES256 Ed25519" -- "$cur")); return ;;
        --format)
            COMPREPLY=($(compgen -W "cms raw pades" -- "$cur")); return ;;
        --key-type)
            COMPREPLY=($(compgen -W "p256 p384 rsa2048 ed25519" -- "$cur")); return ;;
        --touch)
            COMPREPLY=($(compgen -W "never always cached" -- "$cur")); return ;;
    esac

    local flags=""
    case $command in
        keygen)   flags="--alg --out" ;;
        dispatch) flags="$settings $dispatcher --terminal --signer --title --number --from --expires --format --page --rect --verify-url --invisible --mark --initials --anchor --anchor-occurrence --anchor-offset --jabatan --certify --wait --timeout" ;;
        results)  flags="$settings $dispatcher --follow --json --out --overwrite --timeout --client-id --resync" ;;
        verify)   flags="--config --ca --tsa-ca --crl --sig --json --online" ;;
        fleet)    flags="$settings --json --watch --quiet --terminals --listen" ;;
        route)    flags="--ledger --json --pdf" ;;
        audit)
            if [[ $cword -eq $((at + 1)) && $cur != -* ]]; then
                COMPREPLY=($(compgen -W "export verify" -- "$cur")); return
            fi
            flags="--db --timeout" ;;
        token)
            if [[ $cword -eq $((at + 1)) && $cur != -* ]]; then
                COMPREPLY=($(compgen -W "enrol import-cert info sim" -- "$cur")); return
            fi
            case ${words[at+1]} in
                enrol)       flags="--reader --name --nip --org --org-unit --profile --key-type --touch --out-dir --replace --pin-file --new-pin-file --new-puk-file" ;;
                import-cert) flags="--reader --ca --pin-file --replace" ;;
                info)        flags="--reader" ;;
                *)           flags="--state --name --nip --reader-addr --pcscd" ;;
            esac ;;
        completion)
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "bash" -- "$cur")); return
            fi ;;
        help)
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$commands" -- "$cur")); return
            fi ;;
        demo)     flags="--tekend --dir" ;;
        doctor)   flags="--config --user --timeout --socket" ;;
        version)  ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags $common" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _tekenctl tekenctl
