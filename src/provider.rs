//! Mailbox providers behind domains (gmail.com and googlemail.com are one provider).
