# vnet-te: writes the files handed over in the environment (VNET_TE_F<n>_PATH, VNET_TE_F<n>_MODE
# and VNET_TE_F<n>, n = 0, 1, ...), then runs the command given as arguments (the boot script).
# Only at the first start: a restarted container keeps what `path update` wrote since.
# Fixed text, no generated part: paths and contents are only ever expanded as data.
set -u
done=/etc/vnet-te/.files-written
for ((i = 0; ; i++)); do
    p="VNET_TE_F${i}_PATH" m="VNET_TE_F${i}_MODE" c="VNET_TE_F${i}"
    [ -n "${!p:-}" ] || break
    if [ ! -e "$done" ]; then
        f=${!p}
        [ -d "${f%/*}" ] || mkdir -p "${f%/*}"
        printf '%s' "${!c}" > "$f"
        [ "${!m}" = 644 ] || chmod "${!m}" "$f"
    fi
    unset "$p" "$m" "$c"
done
[ -e "$done" ] || { mkdir -p "${done%/*}" && : > "$done"; }
exec "$@"
