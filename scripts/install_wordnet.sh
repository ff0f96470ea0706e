#!/usr/bin/env bash
# Lay out WordNet 3.0 for NLTK without nltk.download, from Debian's packages:
#   scripts/install_wordnet.sh DIR        (the project uses DIR=.venv/nltk_data)
# then NLTK reads it with NLTK_DATA=DIR. nltk.download's servers are unreachable here, Debian's
# mirror is not. Debian ships the dictionary files but not `lexnames`, which NLTK's
# WordNetCorpusReader insists on, so this script writes it. Idempotent: a complete layout is left alone.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR   (WordNet goes to DIR/corpora/wordnet; then export NLTK_DATA=DIR)" >&2
    exit 2
fi
DEST="$1/corpora/wordnet"

# The files NLTK's WordNetCorpusReader opens (its _FILES), all but lexnames from the packages.
DEB_FILES=(cntlist.rev index.sense index.adj index.adv index.noun index.verb
           data.adj data.adv data.noun data.verb adj.exc adv.exc noun.exc verb.exc)

complete=1
for f in "${DEB_FILES[@]}" lexnames; do
    [[ -s "$DEST/$f" ]] || complete=0
done
if [[ $complete -eq 1 ]]; then
    echo "WordNet already laid out in $DEST"
    exit 0
fi

for tool in apt-get dpkg; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found; this script needs a Debian/Ubuntu system" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/debs"
# apt's download sandbox user (_apt) must be able to reach and write this folder, or apt warns.
chmod 755 "$work"
chmod 777 "$work/debs"

fetch() { (cd "$work/debs" && apt-get download -q wordnet-base wordnet-sense-index); }
# Package lists are only refreshed when the download cannot find the packages.
if ! fetch >/dev/null 2>&1; then
    echo "apt-get download failed; running apt-get update first" >&2
    apt-get update -q >/dev/null
    fetch >/dev/null
fi

for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$work/root"
done
SRC="$work/root/usr/share/wordnet"

# Staged next to the destination and moved in at the end, so an interrupted run leaves no half layout.
stage="$DEST.partial.$$"
rm -rf "$stage"
mkdir -p "$stage"
for f in "${DEB_FILES[@]}"; do
    [[ -s "$SRC/$f" ]] || { echo "error: $f missing from the Debian packages" >&2; exit 1; }
    cp "$SRC/$f" "$stage/$f"
done
cp "$work/root/usr/share/doc/wordnet-base/copyright" "$stage/LICENSE"

# The 45 lexicographer files of WordNet 3.0, from lexnames(5WN): number, name, syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb). The data files refer to these by number.
printf '%s\t%s\t%s\n' \
    00 adj.all 3 \
    01 adj.pert 3 \
    02 adv.all 4 \
    03 noun.Tops 1 \
    04 noun.act 1 \
    05 noun.animal 1 \
    06 noun.artifact 1 \
    07 noun.attribute 1 \
    08 noun.body 1 \
    09 noun.cognition 1 \
    10 noun.communication 1 \
    11 noun.event 1 \
    12 noun.feeling 1 \
    13 noun.food 1 \
    14 noun.group 1 \
    15 noun.location 1 \
    16 noun.motive 1 \
    17 noun.object 1 \
    18 noun.person 1 \
    19 noun.phenomenon 1 \
    20 noun.plant 1 \
    21 noun.possession 1 \
    22 noun.process 1 \
    23 noun.quantity 1 \
    24 noun.relation 1 \
    25 noun.shape 1 \
    26 noun.state 1 \
    27 noun.substance 1 \
    28 noun.time 1 \
    29 verb.body 2 \
    30 verb.change 2 \
    31 verb.cognition 2 \
    32 verb.communication 2 \
    33 verb.competition 2 \
    34 verb.consumption 2 \
    35 verb.contact 2 \
    36 verb.creation 2 \
    37 verb.emotion 2 \
    38 verb.motion 2 \
    39 verb.perception 2 \
    40 verb.possession 2 \
    41 verb.social 2 \
    42 verb.stative 2 \
    43 verb.weather 2 \
    44 adj.ppl 3 \
    > "$stage/lexnames"

rm -rf "$DEST"
mv "$stage" "$DEST"
echo "WordNet laid out in $DEST (use NLTK_DATA=$1)"
