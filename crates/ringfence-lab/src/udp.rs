//! UDP payloads: the protocol-shaped requests (DNS, NTP) every UDP probe
//! sends and the answers the lab's responders ([`crate::Listeners`]) give.
//! The probe itself is the engine's (one implementation for the harness,
//! the site lab and `ringfence probe`).

/// The request a probe sends to `port`: a DNS query for `.` NS to 53, an NTP
/// client packet to 123, otherwise an empty datagram.
pub fn request_for(port: u16) -> Vec<u8> {
    match port {
        53 => vec![
            0x52, 0x46, // id
            0x01, 0x00, // standard query, recursion desired
            0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 1 question
            0x00, // root name
            0x00, 0x02, 0x00, 0x01, // NS, IN
        ],
        123 => {
            let mut p = vec![0u8; 48];
            p[0] = 0x23; // LI 0, version 4, mode 3 (client)
            p
        }
        _ => Vec::new(),
    }
}

/// The answer a lab responder gives to `req` on `port`.
pub fn response_for(port: u16, req: &[u8]) -> Vec<u8> {
    match port {
        53 if req.len() >= 12 => {
            let mut r = req.to_vec();
            r[2] |= 0x80; // QR: a response
            r[3] = 0x83; // recursion available, NXDOMAIN: no data, but an answer
            r
        }
        123 => {
            let mut p = vec![0u8; 48];
            p[0] = 0x24; // version 4, mode 4 (server)
            p[1] = 16; // unsynchronized stratum
            if req.len() >= 48 {
                p[24..32].copy_from_slice(&req[40..48]); // origin = client's transmit
            }
            p
        }
        _ => req.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_and_ntp_requests_get_shaped_answers() {
        let q = request_for(53);
        let a = response_for(53, &q);
        assert_eq!(a[0..2], q[0..2]);
        assert_eq!(a[2] & 0x80, 0x80);
        let n = request_for(123);
        assert_eq!(n.len(), 48);
        assert_eq!(n[0] & 7, 3);
        let r = response_for(123, &n);
        assert_eq!(r[0] & 7, 4);
        assert!(request_for(5000).is_empty());
    }
}
