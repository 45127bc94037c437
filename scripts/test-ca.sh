# Throwaway certificate authorities for the test servers (sourced, not run):
# scripts/kmip-server.sh and scripts/pg-server.sh make their TLS material
# with these. EC P-256 keys, certificates valid for two days. Needs openssl.

# A self-signed CA: DIR/NAME.pem and DIR/NAME.key.
make_ca() {
    local dir=$1 name=$2 cn=$3
    printf '%s\n' 'basicConstraints=critical,CA:TRUE' 'keyUsage=critical,keyCertSign,cRLSign' \
        'subjectKeyIdentifier=hash' >"$dir/ca.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$cn" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -signkey "$dir/$name.key" -days 2 -out "$dir/$name.pem" \
        -extfile "$dir/ca.ext" 2>/dev/null
    rm -f "$dir/$name.csr"
}

# One key pair and certificate signed by the CA DIR/CA (default `ca`):
# DIR/NAME.pem and DIR/NAME.key; EXT is an openssl extension file.
issue() {
    local dir=$1 name=$2 ext=$3 cn=$4 ca=${5:-ca}
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$cn" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.pem" -CAkey "$dir/$ca.key" -CAcreateserial \
        -days 2 -out "$dir/$name.pem" -extfile "$ext" 2>/dev/null
    rm -f "$dir/$name.csr"
}
